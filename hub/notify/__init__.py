"""The notifier: escalation digests out to people, by e-mail and webhook (SMS gateways).

Modules, from the inside out: ``templates`` renders a digest (Swedish by default, English
available) from the unit name, counts, the age of the oldest delivery, the level and a sign-in
link, and nothing else; ``breaker`` is the per-channel circuit breaker; ``service`` decides who
gets what, suppresses duplicates by notification id, retries and records every attempt;
``channels`` holds the aiosmtplib and httpx adapters; ``store_log`` records attempts in the SQL
store; ``smtp_sink`` is the local SMTP server of tests and ``make demo``.

This package file imports nothing, so importing ``hub.notify.templates`` does not pull in the
SMTP or HTTP clients.
"""
