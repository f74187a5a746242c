"""Helper modules shared by the tests (not tests themselves).

* :mod:`helpers.fakeprovider`: a local fake of Deezer's and iTunes' APIs, a real HTTP server on 127.0.0.1
  (``catalogue``: the tracks and preview audio it serves; ``routes``: its request handler and faults).
* :mod:`helpers.badinput`: a corpus of bad, odd and hostile inputs, generated on the spot.
* :mod:`helpers.server`: the web app served by a real uvicorn in a thread, and the small library it serves.
* :mod:`helpers.library`: a small library of real tagged files for the library and search tests.
* :mod:`helpers.modelfiles`: model files built and saved, not fitted (a registry network at seeded initial weights).

``tests/`` is on ``sys.path`` when pytest runs (the test folder is not a package),
so tests import these as ``from helpers.fakeprovider import FakeProvider``.
"""
