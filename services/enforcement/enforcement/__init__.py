"""Enforcement (一支队伍管执法): combined inspections, cases within legal time limits, random inspection plans."""
