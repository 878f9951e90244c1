"""The ledger: postings by account and component, balances derived from them, payment allocation
(CN-27, CN-28) and daily accrual of interest and penalty interest under caps (CN-30).

The modules here are a pure core: plain values in, plain values out, no database. `postings` holds the
append-only ledger lines and the balance maths, `allocation` splits a payment, `accrual` adds a day's
interest, `caps` holds the LPR table and the rate caps, `accrual_frame` is the set-based twin of `accrual`.
"""
