#pragma once
// (filled in below)
