"""Repayment arrangements: promises to pay, plans, settlements, extensions; schedule maths, policy, breaches.

Pure core: plain functions over plain values. The service that stores plans and promises wires these to
the database.
"""
