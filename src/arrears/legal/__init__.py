"""Legal escalation: legal cases and their milestones, referral checks, lawyer's letters, evidence bundles.

Pure core here; the service that stores legal cases wires it to the database.
"""
