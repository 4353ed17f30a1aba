-- During a rolling upgrade, replicas of the version before 004 still run and write tasks without
-- next_supervision_at (a new task would never be supervised; a rework would keep a stale moment).
-- Such a write marks the task due at once, and the loop works the moment out from the town's
-- rules. This version sets the column itself on every such write; should a moment it sets equal
-- the old one, the trigger only makes the loop look at the task once more.
CREATE FUNCTION tasks_supervision_due_now() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.next_supervision_at := NEW.window_start;
    RETURN NEW;
END $$;

CREATE TRIGGER tasks_inserted_without_next_supervision BEFORE INSERT ON tasks FOR EACH ROW
    WHEN (NEW.next_supervision_at IS NULL AND NEW.status IN ('dispatched', 'accepted', 'rework'))
    EXECUTE FUNCTION tasks_supervision_due_now();

CREATE TRIGGER tasks_window_moved_without_next_supervision
    BEFORE UPDATE OF window_start, resolve_by ON tasks FOR EACH ROW
    WHEN ((NEW.window_start, NEW.resolve_by) IS DISTINCT FROM (OLD.window_start, OLD.resolve_by)
          AND NEW.next_supervision_at IS NOT DISTINCT FROM OLD.next_supervision_at
          AND NEW.status IN ('dispatched', 'accepted', 'rework'))
    EXECUTE FUNCTION tasks_supervision_due_now();
