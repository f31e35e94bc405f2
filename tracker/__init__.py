"""The syncfs tracker: peer table, global file table with holders, and its broadcast.

It imports the wire protocol from ``syncfs.protocol`` and never imports pyfuse3.
"""
