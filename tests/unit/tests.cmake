# One line per unit test executable.
edge_unit_test(test_config ${CMAKE_CURRENT_SOURCE_DIR}/unit/conf/test_config.c cdn_conf)
target_compile_definitions(test_config PRIVATE EDGE_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
edge_unit_test(test_cache_key ${CMAKE_CURRENT_SOURCE_DIR}/unit/edge/test_cache_key.c cdn_edge)
edge_unit_test(test_cache_policy ${CMAKE_CURRENT_SOURCE_DIR}/unit/edge/test_cache_policy.c cdn_edge)
edge_unit_test(test_store ${CMAKE_CURRENT_SOURCE_DIR}/unit/edge/test_store.c cdn_edge)
edge_unit_test(test_request ${CMAKE_CURRENT_SOURCE_DIR}/unit/origin/test_request.c cdn_origin)
edge_unit_test(test_dir_origin ${CMAKE_CURRENT_SOURCE_DIR}/unit/origin/test_dir_origin.c cdn_origin)
edge_unit_test(test_http_origin ${CMAKE_CURRENT_SOURCE_DIR}/unit/origin/test_http_origin.c cdn_origin)
