"""Coupon pools: import codes, hand one to each message of a coupon rule, link redemptions."""
