"""Everifin BankConnect resources; the public names are in :mod:`aiofinaccess.everifin`."""
