"""Training: fitting every kind of model in the registry, and cross-validating it.

``loop``       the one training loop for networks (:func:`~genrify.train.loop.fit`)
``nets``       networks over feature windows (``mlp``, ``cnn``) on whole tracks, and their cross-validation
``embed``      musicnn embeddings of a dataset's tracks (stored by :mod:`genrify.dataset.embeddings`)
``probe``      linear probes over embeddings (``musicnn-probe``, the music / not-music probe)
``finetune``   musicnn's back end fine-tuned on embeddings (``musicnn-finetune``)
``calibrate``  temperature scaling
``crossval``   the one grouped K-fold loop
``run``        a whole run for any registry model: cross-validate, fit, save, report
"""
