"""Ready-made maintenance jobs, to schedule by import reference.

Each module imports its optional dependency when it is imported, and a missing
one raises ``ImportError`` naming the extra to install:

- :mod:`mainspring.tasks.zodb` (``mainspring.tasks.zodb:pack``): pack a ZODB
  (FileStorage path, ZEO server, or the running application's database);
  needs ``pip install 'mainspring[zodb]'``.
- :mod:`mainspring.tasks.sql` (``mainspring.tasks.sql:delete_older_than``):
  delete rows older than a given age from a table; stdlib ``sqlite3``, or any
  DB-API 2.0 driver.
- :mod:`mainspring.tasks.zope` (``mainspring.tasks.zope:housekeep_sessions``):
  session housekeeping of ``Products.Transience`` containers, with in-band
  housekeeping turned off; needs ``pip install 'mainspring[zope]'``.

Every job returns a JSON-serialisable dict, which the scheduler keeps as the
run's result in the history.
"""
