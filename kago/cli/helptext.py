"""Help texts: runc 1.1.5's help screens with "runc" -> "kago".

Only imported to print help or a usage error, never on a normal command.
"""

from kago.cli.output import tabwrite

APP_USAGE = """Open Container Initiative runtime

kago is a command line client for running applications packaged according to
the Open Container Initiative (OCI) format and is a compliant implementation of the
Open Container Initiative specification.

kago integrates well with existing process supervisors to provide a production
container runtime environment for applications. It can be used with your
existing process monitoring tools and the container will be spawned as a
direct child of the process supervisor.

Containers are configured using bundles. A bundle for a container is a directory
that includes a specification file named "config.json" and a root filesystem.
The root filesystem contains the contents of the container.

To start a new instance of a container:

    # kago run [ -b bundle ] <container-id>

Where "<container-id>" is your name for the instance of the container that you
are starting. The name you provide for the container instance must be unique on
your host. Providing the bundle directory using "-b" is optional. The default
value for "bundle" is the current directory."""

# command -> (usage, args_usage, description); None where runc has none.
# The order is the order of runc's COMMANDS list.
TEXTS = {
    'checkpoint': (
        'checkpoint a running container',
        """<container-id>

Where "<container-id>" is the name for the instance of the container to be
checkpointed.""",
        'The checkpoint command saves the state of the container instance.'),
    'create': (
        'create a container',
        """<container-id>

Where "<container-id>" is your name for the instance of the container that you
are starting. The name you provide for the container instance must be unique on
your host.""",
        """The create command creates an instance of a container for a bundle. The bundle
is a directory with a specification file named "config.json" and a root
filesystem.

The specification file includes an args parameter. The args parameter is used
to specify command(s) that get run when the container is started. To change the
command(s) that get executed on start, edit the args parameter of the spec. See
"kago spec --help" for more explanation."""),
    'delete': (
        'delete any resources held by the container often used with detached container',
        """<container-id>

Where "<container-id>" is the name for the instance of the container.

EXAMPLE:
For example, if the container id is "ubuntu01" and kago list currently shows the
status of "ubuntu01" as "stopped" the following will delete resources held for
"ubuntu01" removing "ubuntu01" from the kago list of containers:

       # kago delete ubuntu01""",
        None),
    'events': (
        'display container events such as OOM notifications, cpu, memory, and IO usage statistics',
        """<container-id>

Where "<container-id>" is the name for the instance of the container.""",
        """The events command displays information about the container. By default the
information is displayed once every 5 seconds."""),
    'exec': (
        'execute new process inside the container',
        """<container-id> <command> [command options]  || -p process.json <container-id>

Where "<container-id>" is the name for the instance of the container and
"<command>" is the command to be executed in the container.
"<command>" can't be empty unless a "-p" flag provided.

EXAMPLE:
For example, if the container is configured to run the linux ps command the
following will output a list of processes running in the container:

       # kago exec <container-id> ps""",
        None),
    'kill': (
        "kill sends the specified signal (default: SIGTERM) to the container's init process",
        """<container-id> [signal]

Where "<container-id>" is the name for the instance of the container and
"[signal]" is the signal to be sent to the init process.

EXAMPLE:
For example, if the container id is "ubuntu01" the following will send a "KILL"
signal to the init process of the "ubuntu01" container:

       # kago kill ubuntu01 KILL""",
        None),
    'list': (
        'lists containers started by kago with the given root',
        """

Where the given root is specified via the global option "--root"
(default: "/run/kago").

EXAMPLE 1:
To list containers created via the default "--root":
       # kago list

EXAMPLE 2:
To list containers created using a non-default value for "--root":
       # kago --root value list""",
        None),
    'pause': (
        'pause suspends all processes inside the container',
        """<container-id>

Where "<container-id>" is the name for the instance of the container to be
paused. """,
        """The pause command suspends all processes in the instance of the container.

Use kago list to identify instances of containers and their current status."""),
    'ps': (
        'ps displays the processes running inside a container',
        '<container-id> [ps options]',
        None),
    'restore': (
        'restore a container from a previous checkpoint',
        """<container-id>

Where "<container-id>" is the name for the instance of the container to be
restored.""",
        """Restores the saved state of the container instance that was previously saved
using the kago checkpoint command."""),
    'resume': (
        'resumes all processes that have been previously paused',
        """<container-id>

Where "<container-id>" is the name for the instance of the container to be
resumed.""",
        """The resume command resumes all processes in the instance of the container.

Use kago list to identify instances of containers and their current status."""),
    'run': (
        'create and run a container',
        """<container-id>

Where "<container-id>" is your name for the instance of the container that you
are starting. The name you provide for the container instance must be unique on
your host.""",
        """The run command creates an instance of a container for a bundle. The bundle
is a directory with a specification file named "config.json" and a root
filesystem.

The specification file includes an args parameter. The args parameter is used
to specify command(s) that get run when the container is started. To change the
command(s) that get executed on start, edit the args parameter of the spec. See
"kago spec --help" for more explanation."""),
    'spec': (
        'create a new specification file',
        None,
        """The spec command creates the new specification file named "config.json" for
the bundle.

The spec generated is just a starter file. Editing of the spec is required to
achieve desired results. For example, the newly generated spec includes an args
parameter that is initially set to call the "sh" command when the container is
started. Calling "sh" may work for an ubuntu container or busybox, but will not
work for containers that do not include the "sh" program.

EXAMPLE:
  To run docker's hello-world container one needs to set the args parameter
in the spec to call hello. This can be done using the sed command or a text
editor. The following commands create a bundle for hello-world, change the
default args parameter in the spec from "sh" to "/hello", then run the hello
command in a new hello-world container named container1:

    mkdir hello
    cd hello
    docker pull hello-world
    docker export $(docker create hello-world) > hello-world.tar
    mkdir rootfs
    tar -C rootfs -xf hello-world.tar
    kago spec
    sed -i 's;"sh";"/hello";' config.json
    kago run container1

In the run command above, "container1" is the name for the instance of the
container that you are starting. The name you provide for the container instance
must be unique on your host.

An alternative for generating a customized spec config is to use "oci-runtime-tool", the
sub-command "oci-runtime-tool generate" has lots of options that can be used to do any
customizations as you want, see runtime-tools (https://github.com/opencontainers/runtime-tools)
to get more information.

When starting a container through kago, kago needs root privilege. If not
already running as root, you can use sudo to give kago root privilege. For
example: "sudo kago start container1" will give kago root privilege to start the
container on your host.

Alternatively, you can start a rootless container, which has the ability to run
without root privileges. For this to work, the specification file needs to be
adjusted accordingly. You can pass the parameter --rootless to this command to
generate a proper rootless spec file.

Note that --rootless is not needed when you execute kago as the root in a user namespace
created by an unprivileged user.
"""),
    'start': (
        'executes the user defined process in a created container',
        """<container-id>

Where "<container-id>" is your name for the instance of the container that you
are starting. The name you provide for the container instance must be unique on
your host.""",
        'The start command executes the user defined process in a created container.'),
    'state': (
        'output the state of a container',
        """<container-id>

Where "<container-id>" is your name for the instance of the container.""",
        """The state command outputs current state information for the
instance of a container."""),
    'update': (
        'update container resource constraints',
        '<container-id>',
        None),
    'features': (
        'show the enabled features',
        None,
        """Show the enabled features.
   The result is parsable as a JSON.
   See https://pkg.go.dev/github.com/opencontainers/runc/types/features for the type definition.
   The types are experimental and subject to change.
"""),
}

HELP_COMMAND = ("Shows a list of commands or help for one command", "[command]", None)


def flag_line(spec):
    """urfave v1's stringifyFlag: ``--bundle value, -b value\\tusage (default: ...)``."""
    from kago.cli import flags as F
    names, kind, usage = spec[0], spec[1], spec[2]
    default = spec[3] if len(spec) > 3 else None
    placeholder = "" if kind == F.BOOL else " value"
    shown = ""
    if kind in (F.INT, F.UINT):
        shown = f" (default: {default or 0})"
    elif kind == F.DURATION:
        shown = f" (default: {default})"
    elif kind == F.STRING and default:
        shown = f' (default: "{default}")'
    parts = []
    for n in names.split(","):
        n = n.strip()
        parts.append(("-" if len(n) == 1 else "--") + n + placeholder)
    return ", ".join(parts) + "\t" + (usage + shown).strip()


def app_help():
    import kago
    from kago.cli import flags as F
    version = f"{kago.__version__}\nspec: {kago.OCI_VERSION}"
    cmds = "".join(f"\n   {name}\t{TEXTS[name][0]}" for name in F.COMMANDS)
    cmds += f"\n   help, h\t{HELP_COMMAND[0]}"
    opts = "\n   ".join(flag_line(s) for s in F.GLOBAL_FLAGS)
    text = (f"NAME:\n   {F.PROG} - {APP_USAGE}\n\n"
            f"USAGE:\n   {F.PROG} [global options] command [command options] [arguments...]\n\n"
            f"VERSION:\n   {version}\n\n"
            f"COMMANDS:{cmds}\n\n"
            f"GLOBAL OPTIONS:\n   {opts}\n")
    return tabwrite(text)


def command_help(name):
    from kago.cli import flags as F
    if name in F.HELP_COMMANDS:
        name, (usage, args_usage, description), flag_specs = "help", HELP_COMMAND, ()
    else:
        usage, args_usage, description = TEXTS[name]
        flag_specs = F.COMMANDS[name][0]
    text = f"NAME:\n   {F.PROG} {name} - {usage}\n\nUSAGE:\n   {F.PROG} {name}"
    if flag_specs:
        text += " [command options]"
    text += " " + (args_usage or "[arguments...]")
    if description:
        text += f"\n\nDESCRIPTION:\n   {description}"
    if flag_specs:
        text += "\n\nOPTIONS:\n   " + "".join(flag_line(s) + "\n   " for s in flag_specs)
    return tabwrite(text + "\n")
