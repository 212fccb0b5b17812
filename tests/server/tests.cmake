# The server's tests: the GoogleTest suites (server_tests, server_queue_tests; label cpu) and the
# node tests of `moestream serve` with the official OpenAI client, headless
# Chromium and a soak (run_node_tests.sh installs what they need, or skips
# with the reason: exit 77). The page's screenshot and the soak's figures go
# to test-artifacts/ in the build folder.
moestream_module_tests(server DEPS moestream_server moestream_gen)
add_dependencies(server_tests moestream)  # serve_cli_test.cc runs the command
# The request queue on its own (test.sh --sanitize thread builds and runs it).
moestream_test(NAME server_queue_tests SRCS ${CMAKE_CURRENT_SOURCE_DIR}/server/queue/request_queue_test.cc
  DEPS moestream_server_queue LABELS cpu)
foreach(t openai-client browser soak)
  add_test(NAME server_node_${t}
    COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/server/run_node_tests.sh $<TARGET_FILE:moestream>
            ${MOESTREAM_SHARED_DIR} ${PROJECT_BINARY_DIR}/test-artifacts ${t})
  set_tests_properties(server_node_${t} PROPERTIES LABELS cpu SKIP_RETURN_CODE 77 TIMEOUT 600
    ENVIRONMENT "MOESTREAM_SANITIZE=${MOESTREAM_SANITIZE}")
endforeach()
# The soak measures memory and latency: not beside the other node tests.
set_tests_properties(server_node_soak PROPERTIES RUN_SERIAL TRUE)
# The deployment files (nginx config, Kubernetes YAML), syntax-checked.
add_test(NAME deploy_configs COMMAND ${PROJECT_SOURCE_DIR}/deploy/check.sh)
set_tests_properties(deploy_configs PROPERTIES LABELS cpu SKIP_RETURN_CODE 77)
