# Integration tests: each tests/integration/test_*.py is one ctest test that runs the real cdn-edge
# (python3 standard library only; curl, nghttp and openssl for the protocol tests).
set(EDGE_IT_DIR ${CMAKE_CURRENT_LIST_DIR})
set(EDGE_IT_ENV
  "CDN_EDGE=$<TARGET_FILE:cdn-edge>"
  "CDN_PURGE=$<TARGET_FILE:cdn-purge>"
  "EDGE_SOURCE_DIR=${CMAKE_SOURCE_DIR}"
  "EDGE_VERSION=${PROJECT_VERSION}"
  "PYTHONDONTWRITEBYTECODE=1")
if(EDGE_SANITIZE)
  list(APPEND EDGE_IT_ENV
    "EDGE_SANITIZE=1"
    "LSAN_OPTIONS=suppressions=${CMAKE_SOURCE_DIR}/tests/lsan.supp"
    "ASAN_OPTIONS=detect_leaks=1")
  set(EDGE_IT_SLOWDOWN 3)
else()
  set(EDGE_IT_SLOWDOWN 1)
endif()

# name, timeout in seconds (before the ASan slowdown), labels
function(edge_integration_test name timeout)
  add_test(NAME integration.${name}
           COMMAND python3 -m unittest -v ${name}.py
           WORKING_DIRECTORY ${EDGE_IT_DIR})
  math(EXPR t "${timeout} * ${EDGE_IT_SLOWDOWN}")
  set(labels integration ${ARGN})
  set_tests_properties(integration.${name} PROPERTIES
    ENVIRONMENT "${EDGE_IT_ENV}"
    TIMEOUT ${t}
    LABELS "${labels}")
endfunction()

edge_integration_test(test_00_harness 60)
edge_integration_test(test_01_config_cli 90)
edge_integration_test(test_02_basic_cache 90)
edge_integration_test(test_03_storing_rules 90)
edge_integration_test(test_04_protocols 120)
edge_integration_test(test_05_errors_truncation 120)
edge_integration_test(test_06_restart_crash 120)
edge_integration_test(test_07_admin_metrics 120)
edge_integration_test(test_08_large_object 900 slow)
edge_integration_test(test_09_embedded_default 90)
edge_integration_test(test_20_cdn_purge 120)
edge_integration_test(test_21_purge_api 120)
edge_integration_test(test_22_purge_stream 180)
edge_integration_test(test_10_shutdown_watchdog 120)
edge_integration_test(test_11_http_caching 120)
edge_integration_test(test_12_stale 120)
edge_integration_test(test_13_vary 120)
edge_integration_test(test_14_compress 120)
edge_integration_test(test_15_key_rules 120)
edge_integration_test(test_16_coalescing 300)
edge_integration_test(test_17_origin_gzip 120)
# fixed ports 8080/8443/8081: never run beside anything else that might use them
set_tests_properties(integration.test_09_embedded_default PROPERTIES RESOURCE_LOCK edge_fixed_ports)
# the harness self-test needs no binary; every other test needs cdn-edge built
set_tests_properties(integration.test_00_harness PROPERTIES ENVIRONMENT "PYTHONDONTWRITEBYTECODE=1")
# a real Next.js app (tests/fixtures/nextjs-app): the first run installs it from npm and builds it (~30 s here, more
# on a slow network); later runs reuse node_modules and .next in the fixture dir. Skips only when npm is unreachable.
edge_integration_test(test_30_nextjs 600 nextjs)
set_tests_properties(integration.test_30_nextjs PROPERTIES RESOURCE_LOCK nextjs_fixture)
edge_integration_test(test_23_purge_fleet 120)
