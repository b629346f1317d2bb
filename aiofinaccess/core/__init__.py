"""The pure core: token sets and ``Secret``, the lifecycle, the renewal step, the clock, the errors.

Everything here is a value or a pure function of its arguments and an injected clock; it is tested
with explicit times and no sleeping.

Wall: imports only the standard library, attrs and cattrs. Never aiohttp, asyncio I/O, or any other
``aiofinaccess`` subpackage.
"""
