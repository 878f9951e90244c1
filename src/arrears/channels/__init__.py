"""Outbound channels: message templates, senders (e-mail, SMS gateway), letters (PDF) and retry policy.

The modules here are the pure core and the transport adapters; the outbox that claims messages and
records their results lives with the database layer.
"""
