# module  cases... (each case is its own CTest entry)
sp_unit_test(util parse_size is_zero be_fields)
sp_unit_test(vhd_footer parse_handmade rejects_bad_cookie rejects_bad_checksum build_round_trip geometry init_is_tap)
sp_unit_test(vhd_header utf16_round_trip utf16_rejects_lone_surrogate decode_w2ku decode_macx encode_decode_macx
             locator_space_units header_round_trip)
sp_unit_test(vmconfig parse_hvm parse_pv_builder round_trip syntax_error_line bad_disk missing_keys bad_mac bad_uuid
             format_refuses copy_free sample_web01)
