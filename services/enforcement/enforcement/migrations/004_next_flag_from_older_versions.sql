-- During a rolling upgrade, replicas of the version before 003 still run and write cases without
-- next_flag_at (a new case would never be flagged). Such a write marks the case due at once, and
-- the loop works the moment out from the town's rules. This version sets the column itself when it
-- files or extends a case; should the moment it sets equal the old one (an extension before the
-- day-60 warning), the trigger only makes the loop look at the case once more.
CREATE FUNCTION cases_flag_due_now() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.next_flag_at := NEW.filed_at;
    RETURN NEW;
END $$;

CREATE TRIGGER cases_inserted_without_next_flag BEFORE INSERT ON cases FOR EACH ROW
    WHEN (NEW.next_flag_at IS NULL AND NEW.step IN ('filed', 'investigated', 'reviewed'))
    EXECUTE FUNCTION cases_flag_due_now();

CREATE TRIGGER cases_limit_moved_without_next_flag BEFORE UPDATE OF decision_due, extended ON cases FOR EACH ROW
    WHEN ((NEW.decision_due, NEW.extended) IS DISTINCT FROM (OLD.decision_due, OLD.extended)
          AND NEW.next_flag_at IS NOT DISTINCT FROM OLD.next_flag_at
          AND NEW.step IN ('filed', 'investigated', 'reviewed'))
    EXECUTE FUNCTION cases_flag_due_now();
