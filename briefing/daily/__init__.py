"""Daily briefings: schedules, collectors and the guarded fetcher, delivery, one run of a
schedule, and the scheduler inside the service."""
