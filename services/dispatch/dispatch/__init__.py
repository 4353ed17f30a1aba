"""Dispatch (派单): the right post at once, A/B holders, colour deadlines, supervision, the command-centre board."""
