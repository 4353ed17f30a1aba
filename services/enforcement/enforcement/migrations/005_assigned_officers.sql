-- Who may act (SPEC §6.1): the team named when an inspection starts are its officers, and only
-- they (or the enforcement module's leader) post its result. Empty: no team was named, and the
-- officers named in the result are its officers. Rows of older versions take the empty default.
ALTER TABLE inspections ADD COLUMN assigned_officers text[] NOT NULL DEFAULT '{}';
