"""Townflow's common library. Nothing of one service's business rules lives here."""
