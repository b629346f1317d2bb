"""The ``aiofinaccess`` command line: its commands, configuration and output, and the demo.

Wall: the top of the house; it may import anything below it, and nothing imports it except
``aiofinaccess.__main__``. Heavy imports wait until a command needs them so ``--help`` stays fast.
"""
