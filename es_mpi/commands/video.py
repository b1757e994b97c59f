"""`es-mpi eval --video`: episodes of a checkpoint's policy as MP4, with gymnasium's RecordVideo.

MuJoCo renders offscreen through EGL (GPU or Mesa) or OSMesa (software); which one works depends
on the machine, so unless MUJOCO_GL is set each is tried in a throwaway process first. The ALE and
other environments render without OpenGL.
"""

import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

from es_mpi.core.errors import UserError

MUJOCO_BACKENDS = ("egl", "osmesa")
PROBE = "import mujoco; c = mujoco.GLContext(64, 64); c.make_current(); c.free()"


def _probe(backend):
    """'' when MuJoCo can open an offscreen context with `backend`, else the last error line."""
    env = dict(os.environ, MUJOCO_GL=backend, PYOPENGL_PLATFORM=backend)
    try:
        done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return "timed out"
    if done.returncode == 0:
        return ""
    lines = done.stderr.strip().splitlines()
    return lines[-1] if lines else f"exit code {done.returncode}"


def choose_mujoco_gl():
    """Set MUJOCO_GL (and PyOpenGL's platform) to a backend that works; MUJOCO_GL if already set."""
    chosen = os.environ.get("MUJOCO_GL")
    if chosen:
        error = _probe(chosen)
        if error:
            raise UserError(f"--video: MuJoCo cannot render offscreen with MUJOCO_GL={chosen} ({error}); "
                            "unset MUJOCO_GL to try egl and osmesa")
        return chosen
    errors = []
    for backend in MUJOCO_BACKENDS:
        error = _probe(backend)
        if not error:
            os.environ["MUJOCO_GL"] = backend
            os.environ.setdefault("PYOPENGL_PLATFORM", backend)
            return backend
        errors.append(f"{backend}: {error}")
    raise UserError("--video: MuJoCo offscreen rendering works with neither EGL nor OSMesa here ("
                    + "; ".join(errors) + "); install libegl1 and libgl1-mesa-dri, or libosmesa6 "
                    "(.ci/render-packages.sh does), or set MUJOCO_GL")


def video_paths(path, n_episodes):
    """PATH for one episode; PATH-episode-K.mp4 beside it for several."""
    path = pathlib.Path(path)
    if n_episodes == 1:
        return [path]
    return [path.with_name(f"{path.stem}-episode-{k}{path.suffix or '.mp4'}") for k in range(n_episodes)]


def check_video_support(path):
    if pathlib.Path(path).suffix.lower() not in ("", ".mp4"):
        raise UserError(f"--video {path}: only .mp4 files are written")
    try:
        import imageio_ffmpeg  # noqa: F401
        import moviepy  # noqa: F401
    except ImportError:
        raise UserError("--video needs moviepy: pip install 'es-mpi[video]'") from None
    if not pathlib.Path(path).resolve().parent.is_dir():
        raise UserError(f"--video {path}: directory {pathlib.Path(path).parent} does not exist")


def recording(env, folder):
    """Wrap `env` so that every episode goes to FOLDER/episode-episode-K.mp4."""
    from gymnasium.wrappers import RecordVideo

    # Classic control draws with pygame into memory; without this SDL looks for a display
    # and complains on stderr when there is none.
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

    class ExactRecordVideo(RecordVideo):
        """RecordVideo whose files hold exactly the captured frames (reset + one per step).

        moviepy's ImageSequenceClip sums 1/fps per frame and may drop the last frame to rounding
        (31 frames at 30 fps come out as 30), so the frames are encoded with imageio-ffmpeg instead.
        """

        def stop_recording(self):
            if self.recorded_frames:
                import imageio.v2 as imageio

                path = os.path.join(self.video_folder, f"{self._video_name}.mp4")
                imageio.mimwrite(path, self.recorded_frames, fps=self.frames_per_sec, codec="libx264",
                                 macro_block_size=1)
            self.recorded_frames = []
            self.recording = False
            self._video_name = None

    return ExactRecordVideo(env, video_folder=str(folder), name_prefix="episode",
                            episode_trigger=lambda _: True, disable_logger=True)


def recorded_files(folder, n_episodes):
    return [pathlib.Path(folder) / f"episode-episode-{k}.mp4" for k in range(n_episodes)]


def move_recordings(folder, path, n_episodes):
    """Move the recorder's files to their final names; returns those names."""
    targets = video_paths(path, n_episodes)
    for source, target in zip(recorded_files(folder, n_episodes), targets):
        shutil.move(source, target)
    return targets


def scratch_folder(path):
    """A temporary folder beside the video, so that the final move is a rename; the recorder makes
    its own folder inside (it warns about one that exists)."""
    return pathlib.Path(tempfile.mkdtemp(prefix=".es-mpi-video-", dir=pathlib.Path(path).resolve().parent)) / "rec"
