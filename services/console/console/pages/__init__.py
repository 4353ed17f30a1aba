"""The console's pages, one module per area of SPEC §9."""
