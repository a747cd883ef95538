"""Class training through PostgreSQL: the run plan, the coordinator and the workers."""
