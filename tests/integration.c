/* Integration suite: every case against a real server, each in a fresh
 * schema (PostgreSQL) or database (MySQL). Usage: integration postgresql|mysql */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "it.h"
#include "tap.h"

#define T(f) cmocka_unit_test_setup_teardown(f, fx_setup, fx_teardown)

int main(int argc, char **argv)
{
	tap_stdout();
	const struct CMUnitTest tests[] = {
		T(cas_applied_conflict_not_found),
		T(cas_read_null_and_text_key),
		T(cas_inside_caller_transaction),
		T(cas_version_overflow),
		T(statements_prepared_once),
		T(retry_threads_no_lost_update),
		T(retry_defaults_never_give_up),
		T(retry_never_retries_not_found),
		T(retry_transient_server_errors),
		T(retry_gives_up_on_attempts_and_deadline),
		T(lease_basic_cycle),
		T(lease_list_and_names),
		T(lease_contention_never_two_holders),
		T(lease_expired_is_taken_over),
		T(lease_timeout_when_held),
		T(lease_paused_holder_cannot_write),
		T(lease_takeover_waits_for_inflight_fenced_write),
		T(lease_sigkilled_holder_is_replaced),
		T(lease_table_from_sql_file),
		T(lease_release_wakes_waiter),
		T(lease_fence_guess_never_decides),
		T(lease_free_name_is_never_busy),
		T(queue_many_waiters_with_deadline),
		T(queue_survives_killed_waiter_and_holder),
		T(queue_wait_is_bounded_by_deadline),
		T(lease_round_trips_counted_on_server),
		T(release_sends_no_notify),
		T(lease_calls_refuse_open_transaction),
		T(lease_waits_at_every_default_isolation),
		T(lease_fence_with_trigger_and_last_insert_id),
		T(retry_rolls_back_failed_attempt),
		T(mysql_url_with_port_uses_tcp),
		T(cas_guard_column_case),
		T(cas_strict_even_without_strict_sql_mode),
		T(pg_readopt_same_connection),
		T(lease_install_checks_existing_table),
		T(lease_install_refuses_keyless_or_coarse_table),
		T(overflow_is_attributed),
		T(autorenew_keeps_lease_alive),
		T(autorenew_reports_takeover),
		T(lease_owner_label),
		T(lease_owner_migration),
		T(fenced_write_guard_modes),
		T(fenced_write_serialization_failure),
		T(lease_force_release),
		T(acquire_wait_is_canceled),
		T(retry_loop_is_canceled),
		T(canceled_head_gives_its_place_back),
		T(semaphore_permits_and_slots),
		T(semaphore_bad_input_changes_nothing),
		T(semaphore_expiry_and_changed_limit),
		T(semaphore_never_more_than_permits),
		T(semaphore_killed_holders_permit_returns),
		T(lease_set_all_or_nothing),
		T(lease_sets_overlap_without_deadlock),
		T(lease_set_member_lost_midway_is_taken_again),
		T(lease_set_canceled_holds_nothing),
		T(lease_payload_set_and_shown),
		T(lease_payload_migration),
		T(election_terms_values_and_observe),
		T(election_never_two_leaders),
		T(election_killed_leader_replaced_at_ttl),
		T(election_observer_follows_resigns),
		T(renewer_keeps_many_leases),
		T(renewer_reports_takeover),
		T(renewer_bad_input),
		T(renewer_lost_on_time_when_server_stops),
		T(shared_token_ends_every_wait),
		T(trip_returns_while_postgres_is_silent),
		T(canceled_grant_never_completes_later),
		T(lease_without_waiting_room_names_no_advisory_lock),
		T(lease_single_modification_grants),
		T(clock_offset_shortens_the_holders_deadline),
		T(once_runs_once_and_replays),
		T(once_install_refuses_wrong_shape),
		T(once_concurrent_duplicates_run_once),
		T(once_busy_then_replay),
		T(once_purge_in_batches),
		T(lease_purge_keeps_fences_increasing),
		T(lease_purge_races_grants),
		T(lease_purge_refuses_older_clients),
		T(lease_purge_bad_input_changes_nothing),
		T(once_holder_killed_inside_callback),
		T(once_stalled_holder_is_lost),
		T(once_cut_commit_then_retry),
		T(once_steps_resume_after_takeover),
		T(events_reach_the_hooks),
		T(hooks_may_call_other_handles),
		T(missing_tables_say_how_to_install),
		T(hooks_may_stop_or_free_their_lease),
		T(bad_input_changes_nothing),
		T(bad_urls_and_servers),
		T(server_gone_mid_call),
		T(connection_lost_during_commit_is_unknown),
		T(adopt_native_connection),
		/* these stop, pause or restart the server: last */
		T(server_stops_answering),
		T(grant_cut_off_is_given_back),
		T(autorenew_lost_on_time_when_server_stops),
		T(lease_tokens_survive_server_restart),
		T(autorenew_reports_server_gone),
	};
	char name[64];
	if (argc != 2 || support_init(argv[1]))
		return 1;
	snprintf(name, sizeof name, "integration-%s", argv[1]);
	if (getenv("LKS_TEST_FILTER")) /* for development: one test by name */
		cmocka_set_test_filter(getenv("LKS_TEST_FILTER"));
	return cmocka_run_group_tests_name(name, tests, NULL, NULL);
}
