-- LiteLLM database: drop litemaas_hooks.deployment_changes (created by 0003).
--
-- It held the outbox id of each deployment's last change, meant to choose the deployment that describes
-- a backend row without trusting replicas' clocks. That choice is now the backend's own (the deployment
-- its sync ends on: the last in /model/info order, i.e. last created, then updated, then model_id, see
-- mapping.canonical), which no outbox order can change; the table was written by every claim, read with
-- every truth and never pruned (one row per deployment id ever seen). Scheduling uses the database's
-- clock only (clock_timestamp() of one server, with a guard against it being stepped back).
DROP TABLE IF EXISTS litemaas_hooks.deployment_changes;
