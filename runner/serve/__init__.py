"""``journey serve``: the production service (events in, unsubscribe, bounces, health, metrics).

An ASGI application (Starlette, served by uvicorn) between the production layer and
the review tools. ``settings`` reads the configuration once, ``app`` collects each
concern's routes, ``storeaccess`` is the one way a handler reaches the store.
"""
