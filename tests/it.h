/* Integration test cases, run once per backend by integration.c. */
#ifndef LKS_IT_H
#define LKS_IT_H
#include "support.h"

void cas_applied_conflict_not_found(void **state);
void cas_read_null_and_text_key(void **state);
void cas_inside_caller_transaction(void **state);
void cas_version_overflow(void **state);
void statements_prepared_once(void **state);
void retry_threads_no_lost_update(void **state);
void retry_defaults_never_give_up(void **state);
void query_rows_with_portable_placeholders(void **state);
void retry_never_retries_not_found(void **state);
void retry_transient_server_errors(void **state);
void retry_gives_up_on_attempts_and_deadline(void **state);

void lease_basic_cycle(void **state);
void lease_list_and_names(void **state);
void lease_contention_never_two_holders(void **state);
void lease_expired_is_taken_over(void **state);
void lease_timeout_when_held(void **state);
void lease_paused_holder_cannot_write(void **state);
void lease_takeover_waits_for_inflight_fenced_write(void **state);
void lease_sigkilled_holder_is_replaced(void **state);
void lease_tokens_survive_server_restart(void **state);
void lease_table_from_sql_file(void **state);
void lease_run_guards_a_function(void **state);
void lease_release_wakes_waiter(void **state);
void lease_fence_guess_never_decides(void **state);
void lease_free_name_is_never_busy(void **state);
void queue_many_waiters_with_deadline(void **state);
void queue_survives_killed_waiter_and_holder(void **state);
void queue_wait_is_bounded_by_deadline(void **state);
void lease_round_trips_counted_on_server(void **state);
void release_sends_no_notify(void **state);
void lease_calls_refuse_open_transaction(void **state);
void lease_waits_at_every_default_isolation(void **state);
void lease_fence_with_trigger_and_last_insert_id(void **state);
void retry_rolls_back_failed_attempt(void **state);
void mysql_url_with_port_uses_tcp(void **state);
void cas_guard_column_case(void **state);
void cas_strict_even_without_strict_sql_mode(void **state);
void pg_readopt_same_connection(void **state);
void lease_install_checks_existing_table(void **state);
void lease_install_refuses_keyless_or_coarse_table(void **state);
void overflow_is_attributed(void **state);
void autorenew_keeps_lease_alive(void **state);
void autorenew_reports_takeover(void **state);
void autorenew_reports_server_gone(void **state);

void lease_owner_label(void **state);
void lease_owner_migration(void **state);
void fenced_write_guard_modes(void **state);
void fenced_write_serialization_failure(void **state);
void lease_force_release(void **state);

void acquire_wait_is_canceled(void **state);
void retry_loop_is_canceled(void **state);

void server_stops_answering(void **state);
void grant_cut_off_is_given_back(void **state);
void autorenew_lost_on_time_when_server_stops(void **state);

void events_reach_the_hooks(void **state);

void bad_input_changes_nothing(void **state);
void bad_urls_and_servers(void **state);
void server_gone_mid_call(void **state);
void connection_lost_during_commit_is_unknown(void **state);
void adopt_native_connection(void **state);
void canceled_head_gives_its_place_back(void **state);
void shared_token_ends_every_wait(void **state);
void trip_returns_while_postgres_is_silent(void **state);
void hooks_may_call_other_handles(void **state);
void missing_tables_say_how_to_install(void **state);
void hooks_may_stop_or_free_their_lease(void **state);
void on_lost_comes_after_a_local_expiry(void **state);
void canceled_grant_never_completes_later(void **state);
void semaphore_permits_and_slots(void **state);
void semaphore_bad_input_changes_nothing(void **state);
void semaphore_expiry_and_changed_limit(void **state);
void semaphore_never_more_than_permits(void **state);
void semaphore_killed_holders_permit_returns(void **state);
void lease_set_all_or_nothing(void **state);
void lease_sets_overlap_without_deadlock(void **state);
void lease_set_member_lost_midway_is_taken_again(void **state);
void semaphore_keeps_its_line(void **state);
void lease_single_modification_grants(void **state);
void lease_set_canceled_holds_nothing(void **state);
void renewer_keeps_many_leases(void **state);
void renewer_reports_takeover(void **state);
void renewer_bad_input(void **state);
void renewer_lost_on_time_when_server_stops(void **state);
void lease_payload_set_and_shown(void **state);
void lease_payload_migration(void **state);
void election_terms_values_and_observe(void **state);
void election_never_two_leaders(void **state);
void election_killed_leader_replaced_at_ttl(void **state);
void election_observer_follows_resigns(void **state);
void once_runs_once_and_replays(void **state);
void once_install_refuses_wrong_shape(void **state);
void once_concurrent_duplicates_run_once(void **state);
void once_busy_then_replay(void **state);
void once_purge_in_batches(void **state);
void once_holder_killed_inside_callback(void **state);
void once_stalled_holder_is_lost(void **state);
void once_cut_commit_then_retry(void **state);
void once_steps_resume_after_takeover(void **state);
void lease_without_waiting_room_names_no_advisory_lock(void **state);
void clock_offset_shortens_the_holders_deadline(void **state);
void lease_purge_keeps_fences_increasing(void **state);
void lease_purge_races_grants(void **state);
void lease_purge_refuses_older_clients(void **state);
void lease_purge_bad_input_changes_nothing(void **state);
#endif
