"""finAPI Access resources; the public names are in :mod:`aiofinaccess.finapi`."""
