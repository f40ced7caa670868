"""Small helpers every layer shares: process groups, loopback ports, HTTP probes, log lines.

Nothing here knows a tool or a use case; each helper exists once (tools, the harness and the
CLI all call these).
"""
