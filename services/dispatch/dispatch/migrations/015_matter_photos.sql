-- Thumbnails in the task lists (issue #29): the first photo of a matter's filing, as
-- `intake.request.filed` references it (intake keeps the photo and its record; dispatch keeps its id
-- alone, and the console reads it through intake's photo route with the person's token). A table
-- beside `matters`, not a column: the previous release's replicas cache `SELECT *` statements
-- during a rolling upgrade (migration 014's reason). Written in the filing's consumer transaction,
-- only for a matter filed with photos; matters filed before this release have none here.
CREATE TABLE IF NOT EXISTS matter_photos (
    request_id  uuid PRIMARY KEY,   -- the matter (matters.request_id); its tasks share it
    first_photo uuid NOT NULL       -- intake's attachment id of the filing's first photo
);
-- A task's first after photo in the lists: attachments_of_task (task_id, uploaded_at, seq) answers it.
