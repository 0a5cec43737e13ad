"""The sink's pure mapping layer: record bytes → Segment-spec messages → Customer.io request bodies.

No I/O and no event loop: nothing here imports asyncio, aiohttp or aiokafka (a test checks it), so every
module is tested with plain values and compiled as a whole by mypyc (``setup.py``). The delivery engine
(``connector.sink``) imports this package; this package imports nothing from the engine.
"""
