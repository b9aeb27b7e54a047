"""The DNS zone a relay publishes (`chatmail-dns`): the records, their zone-file text, the check.

`mtasts` makes the MTA-STS policy, `records` the expected records from the config, `zonefile`
renders and parses them, `compare` judges published against expected (pure), `check` asks DNS.
"""
