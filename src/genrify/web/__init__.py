"""The web front door: a small page and a JSON API over :class:`~genrify.predict.GenreClassifier`.

``create_app()`` (in :mod:`genrify.web.app`) builds the app; importing this
package does nothing else.
"""
