"""Rasa input channels of the project: REST (with the staff-message outbox) and the staff API
for 12345 hotline staff. Enabled in credentials.yml by module path."""

from bot.rasa_speedups import install as _install_speedups

_install_speedups()
