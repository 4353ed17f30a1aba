"""Appraisal (考核): rates, points, four-dimension scores, bonus split, accountability alerts."""
