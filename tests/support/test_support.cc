#include "tests/support/test_support.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "util/files.h"

namespace reel::testing {

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string templ = std::string(base != nullptr ? base : "/tmp") + "/reel-test-XXXXXX";
  if (mkdtemp(templ.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = templ;
}

TempDir::~TempDir() {
  (void)RemoveTree(path_);
}

ProcessResult RunProcess(const std::vector<std::string>& argv) {
  int out_pipe[2], err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0) {
    throw std::runtime_error("pipe failed");
  }
  const pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    dup2(out_pipe[1], STDOUT_FILENO);
    dup2(err_pipe[1], STDERR_FILENO);
    const int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, STDIN_FILENO);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    _exit(127);
  }
  close(out_pipe[1]);
  close(err_pipe[1]);
  ProcessResult result;
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  std::string* sinks[2] = {&result.out, &result.err};
  int open_fds = 2;
  char buf[65536];
  while (open_fds > 0) {
    if (poll(fds, 2, -1) < 0) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP))) continue;
      const ssize_t n = read(fds[i].fd, buf, sizeof(buf));
      if (n > 0) {
        sinks[i]->append(buf, static_cast<size_t>(n));
      } else {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  int status = 0;
  waitpid(pid, &status, 0);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

std::string ReelBinary() {
  return REEL_BINARY;
}
std::string SourceDir() {
  return REEL_SOURCE_DIR;
}

ProcessResult RunReel(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {ReelBinary()};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunProcess(argv);
}

std::string SharedDataDir() {
  const std::string dir = std::string(REEL_SOURCE_DIR) + "/../shared/data";
  std::error_code ec;
  return std::filesystem::is_directory(dir, ec) ? dir : "";
}

bool HaveFfmpegCli() {
  static const bool have = RunProcess({"ffmpeg", "-version"}).exit_code == 0;
  return have;
}

void WriteFile(const std::string& path, const std::string& contents) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << contents;
  if (!out) throw std::runtime_error("cannot write " + path);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

double Psnr8(const uint8_t* a, const uint8_t* b, size_t n) {
  double se = 0;
  for (size_t i = 0; i < n; ++i) {
    const double d = static_cast<double>(a[i]) - static_cast<double>(b[i]);
    se += d * d;
  }
  return se == 0 ? 99.0 : 10.0 * std::log10(255.0 * 255.0 * static_cast<double>(n) / se);
}

SyntheticVideo SimpleVideo(int64_t frames, int width, int height, Rational fps) {
  SyntheticVideo v;
  v.width = width;
  v.height = height;
  v.frame_rate = fps;
  SceneSpec s;
  s.kind = SceneKind::kMovingBox;
  s.frames = frames;
  s.dx = 2;
  v.scenes.push_back(s);
  return v;
}

SceneSpec StillScene(int64_t frames, Rgb lo, Rgb hi, double dx, double dy) {
  SceneSpec s;
  s.kind = SceneKind::kStillImage;
  s.frames = frames;
  s.background = lo;
  s.foreground = hi;
  s.dx = dx;
  s.dy = dy;
  return s;
}

}  // namespace reel::testing
