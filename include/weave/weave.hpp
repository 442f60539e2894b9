#pragma once
/// \file weave.hpp
/// The umbrella header: every public module of weave.

#include "weave/clock.hpp"
#include "weave/concurrent.hpp"
#include "weave/coro.hpp"
#include "weave/errors.hpp"
#include "weave/files.hpp"
#include "weave/future.hpp"
#include "weave/generator.hpp"
#include "weave/locks.hpp"
#include "weave/loop.hpp"
#include "weave/pg.hpp"
#include "weave/queues.hpp"
#include "weave/run.hpp"
#include "weave/sockets.hpp"
#include "weave/streams.hpp"
#include "weave/subprocess.hpp"
#include "weave/task.hpp"
#include "weave/taskgroup.hpp"
#include "weave/timeouts.hpp"
#include "weave/tls.hpp"
#include "weave/transports.hpp"
