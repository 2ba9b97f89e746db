"""The faults suite: real run.py processes, real PostgreSQL, real sockets, and things going wrong.

docs/reliability.md says what each scenario does and lists the figures of the last run;
`pytest tests/faults --soak` runs every scenario longer and bigger.
"""
