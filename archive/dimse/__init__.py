"""The DIMSE side of the archive: C-ECHO, C-STORE, C-FIND, C-GET and C-MOVE.

Modules, one per layer: ``contexts`` (what is negotiated), ``status`` (the codes),
``files`` (Part 10 bytes in and out, pure), ``queries`` (identifiers → the shared
matcher), ``access`` (who may do what), ``sending`` (stored bytes as C-STORE
sub-operations), ``handlers`` (thin event handlers) and ``scp`` (start and stop).
"""
