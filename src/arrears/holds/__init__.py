"""Holds and disputes: dispute, cease request, deceased, bankruptcy, complaint under review, legal hold.

Collection contact stops on a held account until an authorised user clears the hold with a reason; every
change is logged in `hold_event`. Also the small shared pieces of case work: role checks and stored
documents.
"""
