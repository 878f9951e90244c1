"""Portfolio reports: aging by bucket, roll rates month over month, collections over time, promises due
and broken, contacts blocked by rule, the day's runs and the team's queues. The pages, and later the API
and the command line, read them from `reports.service`.
"""
