"""The provider APIs: the request pipeline and thin declarative resources (finAPI users and data,
the Web Form, Everifin BankConnect) with their models.

Wall: imports ``session`` (for an authorized request), ``oauth`` (transport, providers) and
``core``. Never a store or the scheduler directly, and never ``integrations``, ``cli`` or
``sandbox``.
"""
