# module  cases... (each case is its own CTest entry)
sp_unit_test(util parse_size is_zero be_fields error_prefix path_extension)
sp_unit_test(vhd_footer parse_handmade rejects_bad_cookie rejects_bad_checksum build_round_trip geometry init_is_tap)
sp_unit_test(vhd_header utf16_round_trip utf16_rejects_lone_surrogate decode_w2ku decode_macx encode_decode_macx
             locator_space_units header_round_trip)
sp_unit_test(vmconfig parse_hvm parse_pv_builder round_trip syntax_error_line bad_disk missing_keys bad_mac bad_uuid
             format_refuses copy_free sample_web01)
sp_unit_test(xva_stream ids_valid wide_counters round_trip end_of_archive known_digests empty_disk_first_last deterministic gzip_round_trip
             zstd_round_trip lookahead corrupt_block truncated handmade abandoned id_order xva_img_export xva_img_import)
sp_unit_test(xva_xml round_trip deterministic writer_refuses writer_xmllint parse_xapi parse_xo parse_minimal
             rejects_not_well_formed rejects_doctype rejects_missing_vdi rejects_bad_sizes rejects_bad_id
             rejects_too_many_vbds)
sp_unit_test(vmdk open_reads_back stream_reads_back qemu_reads vmdkinfo_reads qemu_stream_read qemu_sparse_read
             deterministic damaged_grain truncated gt_past_eof unknown_marker stream_gt_past_end stream_gt_mismatch
             stream_gd_mismatch stream_grains_out_of_order stream_empty_gt xo_stream_read)
sp_unit_test(vmdk_descriptor parse_qemu parse_forms parse_delta rejects caps standalone_refused probe)
sp_unit_test(ovf round_trip_1 round_trip_2 deterministic writer_xmllint parse_vmware parse_vbox parse_xen_ovirt parse_xo
             rejects_not_well_formed rejects_doctype rejects_required_section rejects_bad_href rejects_missing_file
             parse_chunks rejects_bad_chunks parse_cd_image parse_utf16_label)
sp_unit_test(manifest digest_vectors digest_incremental digest_misuse digest_names format_exact format_refuses
             parse_open_vmdk parse_vbox parse_crlf parse_openssl3 rejects_hex_length rejects_bad_names rejects_duplicate
             rejects_garbage rejects_unsupported rejects_limits sign_verify_round_trip sign_cli_verifies
             verify_cli_signed verify_tampered verify_self_signed sign_key_mismatch verify_wrong_name sign_bad_files
             sign_combined_pem verify_rejects_garbage verify_chain)
sp_unit_test(ova big_member_base256 small_members_exact writer_refuses_paths reader_refuses_paths writer_names)
sp_unit_test(pushdisk ordered_round_trip zero_pushes_not_data read_behind_is_error producer_failure_wakes_consumer
             consumer_abort_wakes_producer push_must_ascend)
sp_unit_test(registry probe_scores names open_and_check)
sp_unit_test(qcow2_header parse_v3_backing parse_v2 zstd_type unknown_feature_named rejects_fields short_input
             empty_disk)
sp_unit_test(qcow2 standalone_refuses backing_shorter)
sp_unit_test(vm_map xva_round_trip xva_xml_round_trip ovf_round_trip ovf_xml_round_trip ovf_controllers ovf_cd_image)
sp_unit_test(par_compress gzip_empty gzip_one_block gzip_many_blocks gzip_deterministic gzip_incompressible gzip_libarchive_reads_members
             zstd_round_trip zstd_deterministic output_fails abandoned levels)
sp_unit_test(s3 part_sizes resume_file url_parse ini_get config_env config_files error_words config_retry_env
  xml_pages xml_hostile)
sp_unit_test(export_name safe_name template_check name_fields name_refused)
target_link_libraries(test_export_name PRIVATE snapport_cli) # cli/export_name.c
