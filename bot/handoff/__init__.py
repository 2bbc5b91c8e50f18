"""Escalation to 12345 hotline staff: tickets and staff accounts (store), working hours
(config), transcript/summary/outbox (conversation), delivery of staff messages to the
citizen's channel (delivery), and the Rasa-server takeover hook (takeover).

CLI: python -m bot.handoff add-staff NAME --role agent|supervisor
"""
