# Per-target warning and sanitizer flags (no global add_compile_options), so that a project
# embedding weave through add_subdirectory keeps its own flags.
function(weave_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic)
  if(WEAVE_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()

function(weave_sanitize target)
  if(NOT WEAVE_SANITIZE)
    return()
  endif()
  list(JOIN WEAVE_SANITIZE "," san)
  target_compile_options(${target} PUBLIC $<BUILD_INTERFACE:-fsanitize=${san} -fno-omit-frame-pointer
                                              -fno-sanitize-recover=all>)
  target_link_options(${target} PUBLIC $<BUILD_INTERFACE:-fsanitize=${san}>)
endfunction()
