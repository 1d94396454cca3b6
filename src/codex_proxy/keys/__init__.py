"""Client keys: one gateway for several agents, each with its own key and limits.

``file.py`` reads, checks and writes the keys file; ``policy.py`` decides what a key may do;
``usage.py`` counts requests and images in a small SQLite file shared by every worker.
"""
