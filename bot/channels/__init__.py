"""Rasa input channels of the project: REST (with the staff-message outbox) and the staff API
for 12345 hotline staff. Enabled in credentials.yml by module path."""
