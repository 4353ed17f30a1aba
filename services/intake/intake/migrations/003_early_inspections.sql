-- An inspection's result can reach intake before the dispatch of a task it covers (different
-- topics, no order between them). Its step waits here, by task, until that dispatch arrives.
CREATE TABLE early_inspection_steps (
    task_id     text        NOT NULL,
    at          timestamptz NOT NULL,
    detail      jsonb       NOT NULL,
    event_id    uuid        NOT NULL,
    PRIMARY KEY (task_id, event_id)
);
