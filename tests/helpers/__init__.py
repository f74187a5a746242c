"""Helper modules shared by the tests (not tests themselves).

* :mod:`helpers.fakeprovider`: a local fake of Deezer's and iTunes' APIs, a real HTTP server on 127.0.0.1.
* :mod:`helpers.badinput`: a corpus of bad, odd and hostile inputs, generated on the spot.
* :mod:`helpers.server`: the web app served by a real uvicorn in a thread, and the small library it serves.

``tests/`` is on ``sys.path`` when pytest runs (the test folder is not a package),
so tests import these as ``from helpers.fakeprovider import FakeProvider``.
"""
