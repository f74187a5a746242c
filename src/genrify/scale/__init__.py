"""Running genrify's jobs past one machine, on a Ray cluster (the optional ``ray`` extra).

``stages``  each job's stage as an actor runs it: set up once (the model), then one item per call;
            the same functions the local path calls, so a cluster computes what one machine does
``engine``  :class:`RayConfig` and :func:`run_stage`: a pool of actors, a bounded number of songs in
            flight, answers as they finish, lost songs resubmitted, each song answered exactly once
``jobs``    the jobs themselves: :func:`analyse_many_on_ray` (``genrify predict --ray``),
            :func:`embed_engine` (``genrify embed --ray``) and :func:`tag_engine` (the analyser
            ``genrify tag --ray`` hands to :func:`genrify.tagging.run_tag_job`);
            the driver alone writes outputs
``local``   :class:`~genrify.scale.local.LocalCluster`: a throw-away cluster of several nodes on this
            machine, for trying ``--ray`` and for the tests and benchmarks

Nothing here imports Ray until a job runs; without it, the error says ``pip install 'genrify[ray]'``.
"""

from genrify.scale.engine import INSTALL_HINT, RayConfig, RunStats, connect, run_stage
from genrify.scale.jobs import analyse_many_on_ray, embed_engine, tag_engine

__all__ = ["INSTALL_HINT", "RayConfig", "RunStats", "analyse_many_on_ray", "connect", "embed_engine", "run_stage",
           "tag_engine"]
