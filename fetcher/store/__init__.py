"""Everything that speaks SQL: the schema, opening the database, upserts, the run ledger, the lock.

No other package module builds SQL; they call the functions here with typed rows.
"""
