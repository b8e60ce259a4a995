"""The API's routes, one module per resource; each exposes ``router(ctx, state) -> APIRouter``.

``health`` (``/api/v1/health``), ``stats`` (``/api/v1/stats``, ``/metrics``), ``ingest``
(``POST /api/v1/ingest``), ``subscribe`` (SSE, ``/api/v1/subscribe``), ``topics``
(``/api/v1/topics/{topic}/tail``), ``patterns`` (``/api/v1/patterns``: the library and its
reviews), ``docs`` (``/``, ``/docs``, ``/redoc``). :func:`logfactory.api.create_app` includes
them all. A route module imports no other route module; what several of them need lives beside
this package (:mod:`logfactory.api.context`, :mod:`logfactory.api.auth`,
:mod:`logfactory.api.responses`, :mod:`logfactory.api.metrics`).
"""
